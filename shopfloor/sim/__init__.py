"""Simulated machines: `shopfloor sim PLANT` serves every machine of a plant file as a
Modbus TCP device. In-process API: `shopfloor.sim.simulator.Simulator`; the pure
behaviour model: `shopfloor.sim.line` and `shopfloor.sim.machine`. See docs/simulator.md.
"""
