#!/bin/sh
# Slurm controller hook for clusterd: install as both PrologSlurmctld and EpilogSlurmctld.
#   install -D -m 755 config/slurm/clusterd-hook.sh /etc/clusterd/clusterd-hook.sh
#   install -D -m 600 config/slurm/hook.env /etc/clusterd/hook.env     # then edit it
#   slurm.conf: PrologSlurmctld=/etc/clusterd/clusterd-hook.sh
#               EpilogSlurmctld=/etc/clusterd/clusterd-hook.sh
# slurmctld runs it with a clean environment (only SLURM_* variables, no PATH), so every
# setting comes from hook.env in this script's directory (CLUSTERD_HOOK_ENV names another
# file). It publishes the job's start (prolog) or stop (epilog) with `clusterd publish
# --from-slurm-env`, which reads the job's real times and end state from `squeue --json`, and
# waits for clusterd's verdict — but never holds the scheduler up for long and never fails
# the job: every problem is logged (to $CLUSTERD_HOOK_LOG, else syslog tag clusterd-hook) and
# the hook exits 0. A retried publish carries the same message id, so clusterd applies it once;
# `clusterd slurm` publishes what a lost hook missed.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
conf=${CLUSTERD_HOOK_ENV:-$(dirname "$0")/hook.env}
if [ -r "$conf" ]; then
    set -a
    . "$conf"
    set +a
fi
bin=${CLUSTERD_BIN:-/usr/local/bin/clusterd}
limit=${CLUSTERD_HOOK_TIMEOUT:-15}
case "$SLURM_SCRIPT_CONTEXT" in
    prolog_slurmctld) what=job-start ;;
    epilog_slurmctld) what=job-stop ;;
    *) what="" ;;
esac

log() {  # one line per event, whatever clusterd printed
    msg=$(printf '%s' "$*" | tr '\n' ' ')
    if [ -n "$CLUSTERD_HOOK_LOG" ]; then
        printf '%s clusterd-hook: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$msg" >> "$CLUSTERD_HOOK_LOG"
    elif command -v logger >/dev/null 2>&1; then
        logger -t clusterd-hook -- "$msg"
    else
        printf 'clusterd-hook: %s\n' "$msg" >&2
    fi
}

if [ ! -r "$conf" ]; then
    log "job ${SLURM_JOB_ID:-?}: no settings file $conf; using the defaults"
fi
case "${CLUSTERD_HOOK_ENABLED:-yes}" in
    no|false|0) log "job ${SLURM_JOB_ID:-?} $what: hook disabled in $conf, nothing sent (clusterd slurm reconciles it)"; exit 0 ;;
esac
if [ -z "$what" ]; then
    log "job ${SLURM_JOB_ID:-?}: unknown SLURM_SCRIPT_CONTEXT '${SLURM_SCRIPT_CONTEXT:-}', nothing sent"
    exit 0
fi
if [ ! -x "$bin" ]; then
    log "job $SLURM_JOB_ID $what not delivered: $bin is not an executable (set CLUSTERD_BIN in $conf)"
    exit 0
fi
# Slurm 22.05 shows an ending job only as COMPLETING until this epilog exits: a cancelled
# job's exit status is still racing in, so its end state is not known yet. The epilog hands
# the stop to a copy of this script in its own session (Slurm kills the hook's process group
# when it exits), which publishes once squeue shows the end state. The copy answers "ready"
# after setsid, so the epilog never exits before the copy is safe.
settle=""
if [ "$what" = job-stop ]; then
    if [ -n "$CLUSTERD_HOOK_DETACHED" ]; then
        echo ready
        exec >/dev/null 2>&1 </dev/null
        settle=${CLUSTERD_HOOK_SETTLE:-120}
    elif command -v setsid >/dev/null 2>&1; then
        ready=$(CLUSTERD_HOOK_DETACHED=1 setsid "$0" 2>&1 </dev/null &)
        [ "$ready" = ready ] && exit 0
        log "job $SLURM_JOB_ID job-stop: could not detach (${ready:-no answer}); publishing now, the end state read from the exit status"
    fi
fi
wait=$((limit > 3 ? limit - 2 : 1))
out=$(timeout "$((limit + ${settle:-0}))" "$bin" publish "$what" --from-slurm-env --timeout "$wait" \
      ${settle:+--settle-seconds "$settle"} --server "${CLUSTERD_NATS_URL:-nats://127.0.0.1:4222}" 2>&1)
rc=$?
case $rc in
    0) case "$out" in *warning:*) log "job $SLURM_JOB_ID $what delivered with a warning: $out" ;; esac ;;
    1) log "job $SLURM_JOB_ID $what refused by clusterd: $out" ;;
    124) log "job $SLURM_JOB_ID $what: no verdict within $((limit + ${settle:-0})) s (it may still be applied): $out" ;;
    *) log "job $SLURM_JOB_ID $what not delivered (exit $rc): $out" ;;
esac
exit 0
