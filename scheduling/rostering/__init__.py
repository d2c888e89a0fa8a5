"""Roster generation: a generic problem, a CP-SAT model over it and an independent checker."""
