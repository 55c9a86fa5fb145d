"""Model stacks: K small MLPs of one data set trained and evaluated as one tensor program.

Every step runs once for the whole stack (batched matmuls over a leading model dimension), so the
per-operation dispatch cost that dominates a 2-32-2 MLP on 30-row batches is paid once per step
instead of once per model. Each member keeps its own random stream and settings, so its result does
not depend on the stack it was trained in (tests/test_stack_training.py checks it against
``ctpaper.training.train``).

Modules: ``mlp`` (stacked parameters and forward), ``adam`` (Adam with a per-member update mask),
``search`` (the batched CE search of method 4 over a stack), ``training`` (method 5 over a stack),
``chunk`` (the grid-chunk entry point: one model file and log per member).
"""
