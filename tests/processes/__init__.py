"""wanvid as users and scripts run it: real processes, real signals, racing processes on one journal."""
