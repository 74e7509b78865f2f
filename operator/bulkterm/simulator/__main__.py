"""``python -m bulkterm.simulator``: the same command as ``bulkterm simulator``."""

from bulkterm.simulator.command import simulator_command

if __name__ == "__main__":
    simulator_command(prog_name="bulkterm simulator")
