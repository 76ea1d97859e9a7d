"""CPU time from /proc, for the network benchmarks' CPU-per-message figures."""
import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """The CPU seconds process `pid` has used: the scheduler's own count of
    its threads' run time (/proc/PID/task/*/schedstat, in nanoseconds),
    which a 1.5 s turn needs. utime + stime from /proc/PID/stat are sampled
    at the clock tick (10 ms here) and are the fallback where the kernel
    keeps no schedstat."""
    total, counted = 0, False
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
            counted = True
        except FileNotFoundError:
            pass  # a thread that has just exited, or no schedstat
    if counted:
        return total / 1e9
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()  # the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def busy_seconds():
    """CPU seconds all CPUs spent busy (user .. steal in /proc/stat). A task's
    run time includes the softirq time spent on its behalf (loopback TCP),
    so busy minus the server's and the load generator's is the rest."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK  # minus idle and iowait
