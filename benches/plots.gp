# Renders the side-by-side plots from `gyre-bench compare --out DIR` data files.
# gnuplot -e "dir='target/bench-report'; a='gyre'; b='peer'; na=4; nb=4" benches/plots.gp
# (na, nb: number of N blocks in fanout-A.dat / fanout-B.dat)
set terminal pngcairo size 900,560 font "DejaVu Sans,10"
set grid
set key outside right top

set output dir.'/fanout-latency.png'
set title 'Fan-out: publish→deliver p99 vs publish rate (server on 1 core, loader on the other)'
set xlabel 'publications per second (one channel, N subscribers)'
set ylabel 'p99 latency (ms)'
set logscale xy
plot for [i=0:na-1] dir.'/fanout-'.a.'.dat' index i using 1:4 with linespoints lw 2 pt 7 lc i+1 title a.' '.columnheader(1), \
     for [i=0:nb-1] dir.'/fanout-'.b.'.dat' index i using 1:4 with linespoints lw 2 dt 2 pt 6 lc i+1 title b.' '.columnheader(1)

set output dir.'/idle-rss.png'
set title 'Server RSS vs idle connections (connected + subscribed, HS256 JWT)'
set xlabel 'connections'
set ylabel 'RSS (MiB)'
unset logscale
set yrange [0:*]
plot dir.'/idle-'.a.'.dat' using 1:2 with linespoints lw 2 pt 7 title a, \
     dir.'/idle-'.b.'.dat' using 1:2 with linespoints lw 2 dt 2 pt 6 title b
