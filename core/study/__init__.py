"""Many runs compared: the study file (`spec`), its folder of member runs, the local runner and the
Ray Tune one, results tables and figures, and the cross-entropy study.

May import: `core.run` and everything below it. Members are `neuraterm train` processes; the study
wing never trains in its own process.
"""
