"""Transactions sized to the block: a block takes a transaction only while the gas it has left
covers the transaction's gas limit (the estimate plus headroom), so the tracker's transactions
must be sized for a whole number of them to fit, not just for each to stay under the budget."""

from __future__ import annotations

import pytest

from tracker.chain.contract import MAX_HEADROOM_GAS, gas_limit_for
from tracker.tracking.senders import transaction_gas


@pytest.mark.parametrize("block_gas_limit", [15_000_000, 30_000_000, 36_000_000, 60_000_000])
@pytest.mark.parametrize("budget", [200_000, 400_000, 1_000_000, 3_000_000, 8_000_000, 12_000_000, 29_000_000])
def test_a_whole_number_of_transactions_fills_the_block(block_gas_limit, budget):
    size = transaction_gas(budget, block_gas_limit)
    assert size <= budget
    count = -(-block_gas_limit // budget) if block_gas_limit > budget else 1
    # the last of them still fits: the others' gas, then its own limit
    assert (count - 1) * size + gas_limit_for(size, block_gas_limit) <= block_gas_limit
    # and together they leave no more of the block unused than one transaction's headroom
    assert count * size >= block_gas_limit - MAX_HEADROOM_GAS - 10_000 - count or size == budget


def test_the_headroom_of_a_large_transaction_is_bounded():
    # 20% on 7.4M would be 1.5M a transaction: four to a 30M block would not fit
    assert gas_limit_for(7_400_000, 30_000_000) == 7_400_000 + MAX_HEADROOM_GAS + 10_000
    assert gas_limit_for(100_000, 30_000_000) == 130_000  # small ones keep their 20%
    assert gas_limit_for(40_000_000, 30_000_000) == 30_000_000  # never past the block
