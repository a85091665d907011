"""Source database generator and user posting emulator (`python -m emulator --help`)."""
