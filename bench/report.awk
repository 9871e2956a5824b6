# report.awk - turn run.sh's raw results into the Markdown tables.
#
# Input: lines "alloc=A case=C run=N RESULT key=value ..." and
# "FAILED alloc=A case=C run=N status=S".  Variables: allocs and cases
# (space-separated, in table order), cgfile (callgrind counts: lines
# "alloc instructions(K) instructions(2K) K").  POSIX awk (mawk is fine).

function median(arr, key, cnt,    v, i, j, x) {
	if (cnt == 0)
		return -1
	for (i = 1; i <= cnt; i++)
		v[i] = arr[key, i] + 0
	for (i = 2; i <= cnt; i++) {
		x = v[i]
		for (j = i - 1; j >= 1 && v[j] > x; j--)
			v[j + 1] = v[j]
		v[j + 1] = x
	}
	if (cnt % 2)
		return v[(cnt + 1) / 2]
	return (v[cnt / 2] + v[cnt / 2 + 1]) / 2
}

function header(first,    i, s, d) {
	s = "| " first " |"
	d = "|---|"
	for (i = 1; i <= A; i++) {
		s = s " " al[i] " |"
		d = d "---:|"
	}
	print s
	print d
}

function missed(text) {
	print "- **missed** " text
}

function met(text) {
	print "- met: " text
}

{
	delete kv
	for (i = 1; i <= NF; i++) {
		eq = index($i, "=")
		if (eq)
			kv[substr($i, 1, eq - 1)] = substr($i, eq + 1)
	}
	key = kv["case"] SUBSEP kv["alloc"]
	if ($1 == "FAILED") {
		failed[key]++
		next
	}
	k = ++cnt[key]
	secs[key, k] = kv["seconds"]
	rss[key, k] = kv["maxrss_kb"]
	ops[key] = kv["ops"]
	if ("rss_over_live" in kv)
		rol[key, k] = kv["rss_over_live"]
	if ("ns_per_pair" in kv)
		nspp[key, k] = kv["ns_per_pair"]
}

END {
	A = split(allocs, al, " ")
	C = split(cases, cl, " ")
	nwl = 0  # workloads, real programs apart
	nprog = 0
	for (c = 1; c <= C; c++)
		if (cl[c] ~ /^prog-/)
			nprog++
		else
			nwl++
	for (c = 1; c <= C; c++) {
		for (a = 1; a <= A; a++) {
			key = cl[c] SUBSEP al[a]
			mt[key] = median(secs, key, cnt[key] + 0)
			mr[key] = median(rss, key, cnt[key] + 0)
		}
	}

	# --- time ---
	print "## Time (median seconds, ratio to the best in parentheses)"
	print ""
	header("workload")
	for (c = 1; c <= C; c++) {
		if (cl[c] ~ /^prog-/)
			continue
		best = -1
		for (a = 1; a <= A; a++) {
			key = cl[c] SUBSEP al[a]
			if (mt[key] > 0 && !failed[key] && (best < 0 || mt[key] < best))
				best = mt[key]
		}
		line = "| " cl[c] " |"
		for (a = 1; a <= A; a++) {
			key = cl[c] SUBSEP al[a]
			if (failed[key])
				cell = "FAILED"
			else if (mt[key] <= 0)
				cell = "-"
			else {
				ratio = mt[key] / best
				tlog[al[a]] += log(ratio)
				tn[al[a]]++
				cell = sprintf("%.3f (%.2f)", mt[key], ratio)
				if (ratio == 1)
					cell = "**" cell "**"
			}
			line = line " " cell " |"
		}
		print line
	}
	line = "| geometric mean of ratios |"
	bestg = -1
	for (a = 1; a <= A; a++) {
		if (tn[al[a]] > 0) {
			g[al[a]] = exp(tlog[al[a]] / tn[al[a]])
			cell = sprintf("%.3f", g[al[a]])
			if (tn[al[a]] < nwl) {
				cell = cell " (" tn[al[a]] "/" nwl " workloads)"
				incomplete[al[a]] = 1
			}
		} else
			cell = "-"
		line = line " " cell " |"
	}
	print line
	print ""
	same_code_noise()

	# --- peak RSS ---
	print "## Peak RSS (median MiB, ratio to the smallest in parentheses)"
	print ""
	header("workload")
	for (c = 1; c <= C; c++) {
		if (cl[c] ~ /^prog-/)
			continue
		best = -1
		for (a = 1; a <= A; a++) {
			key = cl[c] SUBSEP al[a]
			if (mr[key] > 0 && !failed[key] && (best < 0 || mr[key] < best))
				best = mr[key]
		}
		line = "| " cl[c] " |"
		for (a = 1; a <= A; a++) {
			key = cl[c] SUBSEP al[a]
			if (failed[key])
				cell = "FAILED"
			else if (mr[key] <= 0)
				cell = "-"
			else {
				ratio = mr[key] / best
				rlog[al[a]] += log(ratio)
				rn[al[a]]++
				cell = sprintf("%.1f (%.2f)", mr[key] / 1024, ratio)
			}
			line = line " " cell " |"
		}
		print line
	}
	line = "| geometric mean of ratios |"
	for (a = 1; a <= A; a++)
		line = line " " (rn[al[a]] > 0 ? sprintf("%.3f", exp(rlog[al[a]] / rn[al[a]])) : "-") " |"
	print line
	print ""

	# --- figures of particular workloads ---
	for (c = 1; c <= C; c++) {
		if (cl[c] ~ /-t1$/) {
			base = substr(cl[c], 1, length(cl[c]) - 3)
			two = base "-t2"
			line = "| " base ": work per second, 2 threads / 1 thread |"
			found = 0
			for (a = 1; a <= A; a++) {
				k1 = cl[c] SUBSEP al[a]
				k2 = two SUBSEP al[a]
				if (mt[k1] > 0 && mt[k2] > 0 && !failed[k1] && !failed[k2]) {
					s = (ops[k2] / mt[k2]) / (ops[k1] / mt[k1])
					scal[base, al[a]] = s
					cell = sprintf("%.2f", s)
					found = 1
				} else
					cell = "-"
				line = line " " cell " |"
			}
			if (found)
				figs[++nfig] = line
		}
	}
	for (c = 1; c <= C; c++) {
		if (cl[c] == "frag") {
			line = "| frag: peak RSS / peak live bytes |"
			for (a = 1; a <= A; a++) {
				key = cl[c] SUBSEP al[a]
				v = median(rol, key, failed[key] ? 0 : cnt[key] + 0)
				line = line " " (v > 0 ? sprintf("%.2f", v) : "-") " |"
			}
			figs[++nfig] = line
		}
	}
	for (c = 1; c <= C; c++) {
		if (cl[c] ~ /^scaling-/) {
			line = "| " cl[c] ": ns per malloc+free pair |"
			for (a = 1; a <= A; a++) {
				key = cl[c] SUBSEP al[a]
				v = median(nspp, key, failed[key] ? 0 : cnt[key] + 0)
				line = line " " (v > 0 ? sprintf("%.1f", v) : "-") " |"
			}
			figs[++nfig] = line
		}
	}
	# callgrind: (Ir(2K) - Ir(K)) / K, minus the 3 loop-control
	# instructions (add, cmp, jne); argument set-up, calls and PLT stubs
	# stay in, as any caller pays them.
	ncg = 0
	while ((getline cg < cgfile) > 0) {
		split(cg, f, " ")
		ir[f[1]] = (f[3] - f[2]) / f[4] - 3
		ncg++
	}
	if (ncg > 0) {
		line = "| instructions per malloc(32)+free pair (callgrind) |"
		for (a = 1; a <= A; a++)
			line = line " " ((al[a] in ir) ? sprintf("%.1f", ir[al[a]]) : "-") " |"
		figs[++nfig] = line
	}
	if (nfig > 0) {
		print "## Figures"
		print ""
		header("figure")
		for (i = 1; i <= nfig; i++)
			print figs[i]
		print ""
	}

	# --- real programs (issue 6), run with LD_PRELOAD ---
	if (nprog > 0) {
		PA = 0
		for (a = 1; a <= A; a++) {
			for (c = 1; c <= C; c++)
				if (cl[c] ~ /^prog-/ && (mt[cl[c], al[a]] > 0 || failed[cl[c], al[a]])) {
					pal[++PA] = al[a]
					break
				}
		}
		if (PA > 0) {
			print "## Real programs (median seconds, ratio to the best; median peak RSS in MiB)"
			print ""
			line = "| program |"
			d = "|---|"
			for (a = 1; a <= PA; a++) {
				line = line " " pal[a] " |"
				d = d "---:|"
			}
			print line
			print d
			for (c = 1; c <= C; c++) {
				if (cl[c] !~ /^prog-/)
					continue
				best = -1
				for (a = 1; a <= PA; a++) {
					key = cl[c] SUBSEP pal[a]
					if (mt[key] > 0 && !failed[key] && (best < 0 || mt[key] < best))
						best = mt[key]
				}
				line = "| " substr(cl[c], 6) " |"
				for (a = 1; a <= PA; a++) {
					key = cl[c] SUBSEP pal[a]
					if (failed[key])
						cell = "FAILED"
					else if (mt[key] <= 0)
						cell = "-"
					else
						cell = sprintf("%.3f (%.2f); %.1f", mt[key], mt[key] / best, mr[key] / 1024)
					line = line " " cell " |"
				}
				print line
			}
			print ""
		}
	}

	# --- targets of issue 4 ---
	os = "osalloc"
	have_os = 0
	for (a = 1; a <= A; a++)
		if (al[a] == os)
			have_os = 1
	if (!have_os)
		exit
	print "## Targets (issue 4)"
	print ""
	worse = ""
	nwin = 0
	for (c = 1; c <= C; c++) {
		if (cl[c] ~ /^prog-/)
			continue
		ko = cl[c] SUBSEP os
		kg = cl[c] SUBSEP "glibc"
		if (failed[ko] || mt[ko] <= 0) {
			worse = worse " " cl[c] " (failed)"
			continue
		}
		if (mt[kg] <= 0)
			continue
		nwin++
		if (mt[ko] > mt[kg])
			worse = worse sprintf(" %s (%.3f x glibc)", cl[c], mt[ko] / mt[kg])
	}
	if (worse != "")
		missed("median time no worse than glibc on every workload; worse on:" worse)
	else if (nwin > 0)
		met("median time no worse than glibc on every workload")
	ko = "frag" SUBSEP os
	kg = "frag" SUBSEP "glibc"
	if (mr[ko] > 0 && mr[kg] > 0) {
		v = mr[ko] / mr[kg]
		text = sprintf("fragmentation peak RSS osalloc / glibc = %.3f (target <= 1.1)", v)
		if (v <= 1.1)
			met(text)
		else
			missed(text)
	}
	if (os in g) {
		bestother = ""
		for (a = 1; a <= A; a++)
			if (al[a] != os && al[a] !~ /^osalloc/ && (al[a] in g) &&
			    (bestother == "" || g[al[a]] < g[bestother]))
				bestother = al[a]
		if (bestother != "") {
			text = sprintf("geometric mean of time ratios: osalloc %.3f, best peer %s %.3f", g[os], bestother, g[bestother])
			if (incomplete[os])
				missed(text " (osalloc failed some workloads)")
			else if (g[os] <= g[bestother])
				met(text " (lowest)")
			else
				missed(text sprintf(" (osalloc %.1f%% behind)", (g[os] / g[bestother] - 1) * 100))
		}
	}
	if (os in ir) {
		text = sprintf("fast path: %.1f instructions per malloc+free pair (target <= 25)", ir[os])
		if (ir[os] <= 25)
			met(text)
		else
			missed(text)
	}
	for (c = 1; c <= C; c++) {
		if (cl[c] !~ /-t1$/)
			continue
		base = substr(cl[c], 1, length(cl[c]) - 3)
		if ((base, os) in scal) {
			v = scal[base, os]
			text = sprintf("%s: 2 threads do %.2f x the work of 1 (target >= 1.7)", base, v)
			if (v >= 1.7)
				met(text)
			else
				missed(text)
		} else
			missed(base ": no thread scaling figure (a run failed or is missing)")
	}
}

# osalloc and osalloc-dropin run the same allocator (the os_* calls and the
# drop-in malloc): how far apart their medians are shows this run's noise.
function same_code_noise(    c, k1, k2, r, worst, wc, line, n) {
	n = 0
	worst = 1
	line = ""
	for (c = 1; c <= C; c++) {
		if (cl[c] ~ /^prog-/)
			continue
		k1 = cl[c] SUBSEP "osalloc"
		k2 = cl[c] SUBSEP "osalloc-dropin"
		if (!(mt[k1] > 0 && mt[k2] > 0) || failed[k1] || failed[k2])
			continue
		r = mt[k1] / mt[k2]
		if (r < 1)
			r = 1 / r
		if (r > worst) {
			worst = r
			wc = cl[c]
		}
		n++
	}
	if (n == 0)
		return
	printf "Noise yardstick: osalloc and osalloc-dropin run the same allocator; "
	printf "their median times differ by up to %.0f %%", (worst - 1) * 100
	if (worst > 1)
		printf " (%s)", wc
	print ". Time ratios between allocators that are closer than this are " \
	    "not differences this run can show."
	print ""
}
