"""Containment of the sidecar's heavy work (test runs, scans, regex searches): SCHED_IDLE priority, a process
group led by a wrapper that dies with the sidecar, a cgroup per run where cgroups are writable, and the
cleanup of what a killed sidecar left behind. Nothing here runs at import.
"""
