"""Operations around a session: workspace, lock file, watchdog, kill switch."""
