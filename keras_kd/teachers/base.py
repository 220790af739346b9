"""What every teacher returns: a dict of outputs with at least `"logits"` (or `"embedding"`)."""

OUTPUT_KEYS = ("logits", "hidden_states", "attentions", "embedding")


def as_output_dict(outputs):
    """Normalize a model's outputs to a dict: a tensor becomes `{"logits": tensor}`."""
    if isinstance(outputs, dict):
        return dict(outputs)
    if isinstance(outputs, (list, tuple)):
        raise ValueError(
            "Teacher and student must return logits (a tensor) or a dict with a 'logits' key; "
            f"received a {type(outputs).__name__} of {len(outputs)} outputs. Return a dict such as "
            "{'logits': ..., 'hidden_states': [...]} to expose several outputs."
        )
    return {"logits": outputs}
