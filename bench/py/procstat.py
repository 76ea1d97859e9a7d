"""CPU time from /proc, for the network benchmarks' CPU-per-message figures."""
import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """The CPU seconds (user and system) process `pid` has used."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()  # the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def busy_seconds():
    """CPU seconds all CPUs spent busy (user .. steal in /proc/stat). A task's
    utime and stime include the softirq time spent on its behalf (loopback
    TCP), so busy minus the server's and the load generator's is the rest."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK  # minus idle and iowait
