#!/bin/sh
# Run a command so that it gets the CPU only when nothing else wants it: `make test` runs ansible-lint and the tests
# without a lab this way, beside the lab tests.
#
# nice alone is not enough: with the kernel's autogroups (sched_autogroup_enabled), nice ranks processes only within
# their session, and every lab machine, and every ansible-playbook that ansible-runner starts (pexpect), is a session of
# its own. A control group whose CPU weight is "idle" (cpu.idle, Linux 5.15+) is ranked below every other group of its
# level, whatever the sessions inside it. Root puts this shell in one, under the cgroup v1 cpu controller or the cgroup
# v2 root; elsewhere (not root, a delegated cgroup tree) the command runs with nice and idle I/O only.
set -u
for cg in /sys/fs/cgroup/cpu/airflow-cluster-idle /sys/fs/cgroup/airflow-cluster-idle; do
  parent=${cg%/*}
  if [ -w "$parent/cgroup.procs" ] && { [ -e "$parent/cpu.shares" ] || grep -qw cpu "$parent/cgroup.subtree_control" 2>/dev/null; }; then
    mkdir -p "$cg" 2>/dev/null || continue
    echo 1 > "$cg/cpu.idle" 2>/dev/null || echo 2 > "$cg/cpu.shares" 2>/dev/null || echo 1 > "$cg/cpu.weight" 2>/dev/null
    echo $$ > "$cg/cgroup.procs" 2>/dev/null && break
  fi
done
exec nice -n 19 ionice -c 3 "$@"
