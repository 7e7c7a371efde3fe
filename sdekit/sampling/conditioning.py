"""The model as a sampler calls it, ``model(x, t)``: the spec's conditioning applied and the
caller's ``model_kwargs`` bound to the batch — in this one place for every sampler, both
backends and :func:`~sdekit.optimize_grid` (:mod:`sdekit.models.conditioning`)."""

from __future__ import annotations

from ..errors import InputError
from ..guidance import classifier_free
from ..models.conditioning import bind_model_kwargs, check_model_kwargs
from ..models.labels import class_labels, model_num_classes

__all__ = ["conditioned_model"]


def conditioned_model(spec, model, model_kwargs, batch: int, device=None):
    """``model(x, t)`` for a batch of ``batch`` samples drawn with ``spec``:

    - ``spec.classes`` gives the labels ``y`` (blocks of samples per class,
      :func:`~sdekit.models.labels.class_labels`), unless ``model_kwargs`` holds ``y``;
    - ``spec.guidance`` wraps the model in :func:`~sdekit.guidance.classifier_free` (null
      label K, ``spec.guidance_interval``, ``spec.guidance_rescale``);
    - ``model_kwargs`` are bound to the batch (:func:`~sdekit.models.bind_model_kwargs`).
    """
    kwargs = check_model_kwargs(model_kwargs, batch)
    if spec.classes is not None:
        if "y" in kwargs:
            raise InputError(
                "give the labels once: the spec's classes or model_kwargs['y'], not both"
            )
        k = model_num_classes(model)
        kwargs["y"] = class_labels(spec.classes, batch, k, name="classes").to(device)
    if spec.guidance is not None:
        model = classifier_free(
            model, spec.guidance, null_label=model_num_classes(model),
            interval=spec.guidance_interval, rescale=spec.guidance_rescale or 0.0,
        )  # fmt: skip
    return bind_model_kwargs(model, kwargs, batch)
