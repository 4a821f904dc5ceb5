"""Sources of IMU batches: BLE sensors, the simulated wearer, replays and CSV files."""
