"""Workbench: writing and judging poems with a trained model: `constraints` (forms, tones, rhyme,
keywords as masks), `decode` (sampling and beam search under them), `scoring` (a poem's faults and
surprisal), `measure` (the workbench's figures against independent checkers)."""
