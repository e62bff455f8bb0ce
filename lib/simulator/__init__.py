"""A loopback exchange simulator that real ccxt classes talk to (Binance spot, OKX v5).

    from lib.simulator import Simulator, SimulatorConfig
    with Simulator(SimulatorConfig(seed=1, accounts=3)) as sim:
        account = sim.accounts[0]          # .api_url and .credentials() for ccxt
        truth = sim.truth(account.id)      # what ccxt should find

It stands alone: nothing else in ``lib`` is imported, and nothing in the product may
special-case it.
"""

from lib.simulator.accounts import GroundTruth, SimAccount, SimulatorConfig
from lib.simulator.faults import FAULT_KINDS, Faults
from lib.simulator.server import Simulator

__all__ = ["FAULT_KINDS", "Faults", "GroundTruth", "SimAccount", "Simulator", "SimulatorConfig"]
