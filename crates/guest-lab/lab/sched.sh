# Starting a scheduler in the guest and following it; sourced by /init (installed as
# /etc/ktstr-sched.sh). Uses ktstr_phase from /init. The directories are variables so
# that the host's tests can run these functions with the same busybox:
#   KTSTR_SCHED_DIR   where sched.log, sched.log.old, sched.pid, sched.rc live (/tmp)
#   KTSTR_SCX_SYSFS   the kernel's sched_ext directory (/sys/kernel/sched_ext)
: "${KTSTR_SCHED_DIR:=/tmp}"
: "${KTSTR_SCX_SYSFS:=/sys/kernel/sched_ext}"

# The scheduler's output: the loader writes sched.log; a scheduler process writes through
# ktstr_log_ring, which keeps sched.log.old + sched.log bounded.
KTSTR_SCHED_LOG_LINES=200

# ktstr_log_ring FILE LINES: stdin to FILE line by line, each line cut to 1024 bytes;
# every LINES lines FILE moves to FILE.old and a new FILE starts, so the two files hold
# the last LINES to 2*LINES lines, always flushed.
ktstr_log_ring() {
    awk -v f="$1" -v max="$2" '{
        print substr($0, 1, 1024) > f
        fflush(f)
        if (++n >= max) { close(f); system("mv -f " f " " f ".old"); n = 0 }
    }'
}

# The last $1 lines the scheduler printed.
ktstr_sched_lines() {
    { cat "$KTSTR_SCHED_DIR/sched.log.old"; cat "$KTSTR_SCHED_DIR/sched.log"; } 2>/dev/null |
        tail -n "$1"
}

# Print the last lines of the scheduler's log under the label sched-log.
ktstr_sched_log() {
    ktstr_sched_lines 60 | sed 's/^/KTSTR-OUT sched-log: /'
}

# In the background while a scheduler is attached: when it leaves, report the phase
# scheduler-exited and the kernel's dump (label scx-dump).
ktstr_watch_exit() {
    while read -r _state < "$KTSTR_SCX_SYSFS/state" && [ "$_state" = enabled ]; do
        usleep 100000
    done
    ktstr_phase scheduler-exited state="$_state"
    sed -n 's/.*sched_ext_dump: //p' /sys/kernel/tracing/trace 2>/dev/null |
        sed 's/^/KTSTR-OUT scx-dump: /'
    echo "KTSTR-END scx-dump rc=0"
}

# Wait up to $1 s for $KTSTR_SCX_SYSFS to show an attached scheduler; $2 is a pid
# that must stay alive meanwhile (0: none).
ktstr_wait_attached() {
    _deadline=$(( $(date +%s) + $1 ))
    while [ "$(date +%s)" -le "$_deadline" ]; do
        if [ "$(cat "$KTSTR_SCX_SYSFS/state" 2>/dev/null)" = enabled ] &&
            [ -r "$KTSTR_SCX_SYSFS/root/ops" ]; then
            ktstr_phase scheduler-attached ops="$(cat "$KTSTR_SCX_SYSFS/root/ops")"
            ktstr_watch_exit &
            return 0
        fi
        if [ "$2" != 0 ] && ! kill -0 "$2" 2>/dev/null; then
            ktstr_phase scheduler-failed reason=exited
            ktstr_sched_log
            return 1
        fi
        usleep 50000
    done
    ktstr_phase scheduler-failed reason=timeout
    ktstr_sched_log
    return 1
}

# ktstr_sched_loader NAME TIMEOUT OBJECT [--set var=value ...]: load and attach a
# struct_ops scheduler object with the project's loader (it pins the link and exits).
ktstr_sched_loader() {
    _name="$1"; _timeout="$2"; _obj="$3"; shift 3
    ktstr_phase scheduler-start name="$_name"
    if ! /bin/ktstr-loader "$_obj" --pin /sys/fs/bpf/ktstr_sched "$@" \
        > "$KTSTR_SCHED_DIR/sched.log" 2>&1; then
        ktstr_phase scheduler-failed reason=loader-rc-$?
        ktstr_sched_log
        return 1
    fi
    ktstr_wait_attached "$_timeout" 0
}

# ktstr_sched_daemon NAME TIMEOUT BINARY [ARGS...]: a scheduler that is its own process.
# Its stdout and stderr go through ktstr_log_ring; when it exits, the phase
# scheduler-process-exit rc=<$? of wait> [signal=<rc-128> when rc > 128] and its last
# lines under the label sched-tail (KTSTR-END sched-tail rc=<rc>).
ktstr_sched_daemon() {
    _name="$1"; _timeout="$2"; shift 2
    _d="$KTSTR_SCHED_DIR"
    ktstr_phase scheduler-start name="$_name"
    rm -f "$_d/sched.pid" "$_d/sched.rc" "$_d/sched.log" "$_d/sched.log.old"
    (
        { "$@" 2>&1 & echo $! > "$_d/sched.pid"; wait $!; echo $? > "$_d/sched.rc"; } |
            ktstr_log_ring "$_d/sched.log" "$KTSTR_SCHED_LOG_LINES"
        _rc=$(cat "$_d/sched.rc" 2>/dev/null || echo 255)
        if [ "$_rc" -gt 128 ]; then
            ktstr_phase scheduler-process-exit rc="$_rc" signal=$(( _rc - 128 ))
        else
            ktstr_phase scheduler-process-exit rc="$_rc"
        fi
        ktstr_sched_lines 60 | sed 's/^/KTSTR-OUT sched-tail: /'
        echo "KTSTR-END sched-tail rc=$_rc"
    ) &
    # The pid file appears once the subshell has started the scheduler (up to 5 s).
    _i=0
    while [ ! -s "$_d/sched.pid" ] && [ "$_i" -lt 250 ]; do
        usleep 20000
        _i=$(( _i + 1 ))
    done
    KTSTR_SCHED_PID=$(cat "$_d/sched.pid" 2>/dev/null || echo 0)
    ktstr_wait_attached "$_timeout" "$KTSTR_SCHED_PID"
}
