"""The spine-angle pipeline: pure computation from IMU batches to spine angles (DESIGN §2).

``filters`` (streaming SciPy filters), ``orientation`` (per-sensor 6D fusion: VQF and a
complementary fallback), ``calibration`` (neutral capture, functional axis, sensor errors),
``rig`` (1–3 sensors on a common grid → thoracic, lumbar, trunk, pelvis, spine angles).
No asyncio and no I/O here.
"""
