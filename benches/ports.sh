# Sourced by the bench scripts: loopback ports. The caller defines die().

# free_port: prints a loopback port nothing listens on (20000-29999).
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 10000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
}

# wait_port PORT: returns once something listens on PORT; dies after 10 s.
wait_port() {
  local port="$1" i
  for i in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  die "nothing listens on port $port after 10 s"
}
