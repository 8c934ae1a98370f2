# Renders the side-by-side plots from `gyre-bench compare --out DIR` data files.
# gnuplot -e "dir='target/bench-report'; a='gyre'; b='peer'; na=4; nb=4" benches/plots.gp
# (na, nb: number of N blocks in fanout-A.dat / fanout-B.dat)
set terminal pngcairo size 900,560 font "DejaVu Sans,10"
set grid
set key outside right top

set output dir.'/fanout-latency.png'
set title 'Fan-out: publish→deliver p99 vs delivery rate (server on CPU 0, loader on CPU 1)'
set xlabel 'deliveries per second (one channel: N subscribers × publish rate)'
set ylabel 'p99 latency (ms)'
set logscale xy
plot for [i=0:na-1] dir.'/fanout-'.a.'.dat' index i using 2:4 with linespoints lw 2 pt 7 lc i+1 title a.' '.columnheader(1), \
     for [i=0:nb-1] dir.'/fanout-'.b.'.dat' index i using 2:4 with linespoints lw 2 dt 2 pt 6 lc i+1 title b.' '.columnheader(1)

set output dir.'/idle-rss.png'
set title 'Server RSS vs idle connections (connected + subscribed, HS256 JWT)'
set xlabel 'connections'
set ylabel 'RSS (MiB)'
unset logscale
set yrange [0:*]
stats dir.'/idle-'.a.'.dat' using 2 nooutput
base = STATS_min
target(x) = base + x * 8000.0 / 1048576
plot target(x) with lines lw 1 dt 3 lc rgb 'gray40' title 'target 8 KB/conn', \
     dir.'/idle-'.a.'.dat' using 1:2 with linespoints lw 2 pt 7 title a, \
     dir.'/idle-'.b.'.dat' using 1:2 with linespoints lw 2 dt 2 pt 6 title b
