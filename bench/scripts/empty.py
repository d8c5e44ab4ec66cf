# Figure 1: an empty test script (no machines).
