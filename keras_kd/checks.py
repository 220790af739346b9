"""In-graph checks of what reaches a training step (owner: the "no silent failures" work).

`apply_gradients_checked` is the one place where a `Distiller` step applies gradients, so checks of
the batch, the teacher outputs, the loss and the gradients can run before the update.
"""


def apply_gradients_checked(distiller, optimizer, gradients, variables, batch=None, teacher_outputs=None, terms=None):
    """Apply `gradients` to `variables` with `optimizer` (checks are added here).

    Args:
        distiller: the `Distiller` running the step.
        optimizer: the optimizer that owns `variables`.
        gradients, variables: lists of the same length.
        batch: `(x, y, sample_weight)` of the step (after augmentation).
        teacher_outputs: the teacher's outputs dict for the batch, or None.
        terms: the dict of loss terms (`loss`, `student_loss`, ...).
    """
    optimizer.apply_gradients(zip(gradients, variables, strict=True))
