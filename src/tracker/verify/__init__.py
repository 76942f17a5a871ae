"""Independent verification of a published instance protocol against the chain, ENS and the server's certificate."""
