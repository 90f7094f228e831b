"""Pure, batched, differentiable torch physics of beamgym (batch dimension first)."""
