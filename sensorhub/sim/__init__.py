"""The simulated wearer: a seated person with 1–3 back IMUs, with ground truth.

Modules: ``motion`` (keyframe scripts → smooth joint trajectories), ``body`` (kinematic chain
→ segment orientations and sensor positions), ``imu`` (sensor error model, sampling, BLE-like
delivery), ``scenarios`` (the named scenarios), ``wearer`` (puts them together, chunk by chunk,
with ground truth), ``export`` (the DESIGN §6 files). See docs/simulator.md.
"""
