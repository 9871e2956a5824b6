-- real-sqlite.sql - the "sqlite3" real-program timing:
-- sqlite3 -init /dev/null :memory: ".read real-sqlite.sql"
-- builds a 150,000-row table in memory, indexes, queries, updates and
-- deletes; the output is compared between allocators.
PRAGMA cache_size = -65536;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, name TEXT, v REAL);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 150000)
INSERT INTO t
  SELECT i, (i * 7919) % 1000,
         printf('name-%08d-%s', (i * 104729) % 1000003, hex(i)), i * 0.5
  FROM c;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_name ON t(name);
SELECT k, count(*), sum(v), max(name) FROM t GROUP BY k ORDER BY k LIMIT 5;
SELECT count(DISTINCT substr(name, 6, 4)) FROM t;
UPDATE t SET name = name || '-x' WHERE k % 3 = 0;
DELETE FROM t WHERE k % 5 = 1;
SELECT count(*), sum(length(name)) FROM t;
SELECT a.k, count(*) FROM t a JOIN t b ON a.id = b.id + 1
  WHERE a.k < 50 GROUP BY a.k ORDER BY 2 DESC, 1 LIMIT 3;
