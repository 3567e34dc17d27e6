"""What each step wants on a host, as resources built from SMEP numbers and the inventory."""
