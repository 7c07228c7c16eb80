#!/bin/sh
# Slurm controller hook for clusterd: install as both PrologSlurmctld and EpilogSlurmctld.
#   PrologSlurmctld=/etc/clusterd/clusterd-hook.sh
#   EpilogSlurmctld=/etc/clusterd/clusterd-hook.sh
# It publishes the job's start (prolog) or stop (epilog) with `clusterd publish --from-slurm-env`
# and waits for clusterd's verdict, but never holds the scheduler up for long and never fails
# the job: every problem is logged (syslog tag clusterd-hook, or $CLUSTERD_HOOK_LOG) and the hook
# exits 0. A retried publish carries the same message id, so clusterd applies it once.
# Settings (e.g. in slurmctld's environment or /etc/default/slurmctld):
#   CLUSTERD_BIN (default /usr/local/bin/clusterd), CLUSTERD_NATS_URL (default nats://127.0.0.1:4222),
#   CLUSTERD_NATS_USER / CLUSTERD_NATS_PASSWORD, CLUSTERD_HOOK_TIMEOUT (seconds, default 15).
bin=${CLUSTERD_BIN:-/usr/local/bin/clusterd}
limit=${CLUSTERD_HOOK_TIMEOUT:-15}
case "$SLURM_SCRIPT_CONTEXT" in
    prolog_slurmctld) what=job-start ;;
    epilog_slurmctld) what=job-stop ;;
    *) what="" ;;
esac

log() {
    if [ -n "$CLUSTERD_HOOK_LOG" ]; then
        printf '%s clusterd-hook: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >> "$CLUSTERD_HOOK_LOG"
    elif command -v logger >/dev/null 2>&1; then
        logger -t clusterd-hook -- "$*"
    else
        printf 'clusterd-hook: %s\n' "$*" >&2
    fi
}

if [ -z "$what" ]; then
    log "job ${SLURM_JOB_ID:-?}: unknown SLURM_SCRIPT_CONTEXT '${SLURM_SCRIPT_CONTEXT:-}', nothing sent"
    exit 0
fi
wait=$((limit > 3 ? limit - 2 : 1))
out=$(timeout "$limit" "$bin" publish "$what" --from-slurm-env --timeout "$wait" \
      --server "${CLUSTERD_NATS_URL:-nats://127.0.0.1:4222}" 2>&1)
rc=$?
case $rc in
    0) ;;
    1) log "job $SLURM_JOB_ID $what refused by clusterd: $out" ;;
    124) log "job $SLURM_JOB_ID $what: no verdict within ${limit} s (it may still be applied): $out" ;;
    *) log "job $SLURM_JOB_ID $what not delivered (exit $rc): $out" ;;
esac
exit 0
