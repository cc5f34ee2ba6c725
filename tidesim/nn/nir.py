"""Export ``ts.nn`` networks to the Neuromorphic Intermediate Representation (NIR) and import NIR graphs,
including those written by snnTorch's ``export_to_nir``.

NIR describes neurons as continuous-time dynamical systems and has no time step; tidesim's ``ts.nn``
layers are discrete maps. The two are tied by **forward Euler at a step** ``dt`` **(s)**, the convention
snnTorch's exporter also follows. Every exported graph records that ``dt`` in its metadata, and
:func:`import_nir` reads it back, so a round trip is exact.

Mapping (``beta``: decay per step, ``theta``: threshold, ``x[t]``: the layer input at step ``t``)

=====================================  ==================================================================
``ts.nn`` layer                        NIR
=====================================  ==================================================================
``nn.Linear`` (with / without bias)    ``Affine`` / ``Linear``
``nn.Conv1d``, ``nn.Conv2d``           ``Conv1d``, ``Conv2d`` (zero padding mode; a missing bias is a zero bias)
``nn.Flatten``                         ``Flatten`` (dimensions counted without the batch dimension)
``nn.AvgPool2d`` (no padding)          ``AvgPool2d``
:class:`Scale`                         ``Scale``
``nn.Identity``, ``nn.Dropout``        nothing (identity at inference)
``LIF``, ``beta < 1``                  ``LIF(tau=dt/(1-beta), r=tau/dt, v_leak=0, v_threshold=theta, v_reset=0)``
``LIF``, ``beta = 1``                  ``IF(r=1/dt, v_threshold=theta, v_reset=0)``
``LIF(reset="none")``                  ``LI(tau, r, v_leak=0)`` then ``Threshold(theta)`` (``I`` for ``beta = 1``)
``Readout`` (last layer only)          ``LI(tau=dt/(1-beta), r=tau/dt, v_leak=0)`` (``I(r=1/dt)`` for ``beta = 1``)
``Recurrent(LIF, n)``                  a ``NIRGraph`` node: ``input -> lif -> output``, ``lif -> w_rec -> lif``
=====================================  ==================================================================

Why these numbers: Euler at step ``dt`` of ``tau dv/dt = (v_leak - v) + r I`` is
``v[t] = (1 - dt/tau) v[t-1] + (dt/tau) (v_leak + r I[t])``; with ``tau = dt/(1-beta)``, ``r = tau/dt`` and
``v_leak = 0`` this is ``v[t] = beta v[t-1] + I[t]``, the ``LIF`` map with the input gain ``r dt/tau = 1``.
For ``IF`` (``dv/dt = r I``) the same holds with ``r = 1/dt`` (``r`` in 1/s, not a per-step gain). On import
a node whose gain ``r dt/tau`` (``r dt`` for ``IF``/``I``) is not 1 becomes a :class:`Scale` layer in front
of the neuron layer, so membranes keep NIR's scale.

Resets. NIR's ``LIF``/``IF`` reset **to** ``v_reset`` when ``v > v_threshold``; in continuous time that is
the only reset there is, so NIR has no subtractive reset. tidesim's ``reset="zero"`` is exactly NIR's reset
to ``v_reset = 0`` (the reset takes effect before the next step's update; the membrane a layer reports is
the value the threshold saw, before the reset). tidesim's ``reset="subtract"``
(``v[t] = beta v[t-1] + x[t] - theta z[t-1]``) has no NIR form: it is exported as ``v_reset = 0`` with
``metadata["reset"] = "subtract"`` on the node, which :func:`import_nir` honours and other NIR consumers
ignore (they will reset to 0; :class:`NIRSemanticsWarning` says so at export). ``reset="none"`` is exact as
``LI`` followed by ``Threshold``.

snnTorch (``snntorch.export_to_nir``, checked with snnTorch 1.0) writes every ``Leaky`` as
``LIF(tau=1e-4/(1-beta), r=tau/1e-4, v_leak=0, v_reset=0)``: its ``dt`` is a fixed 1e-4 s that the graph does
not record, and its reset mechanism is dropped (its default, ``"subtract"``, is written as a reset to 0).
Import such graphs with ``dt=1e-4`` (or ``dt="infer"``) and, for ``Leaky`` layers that subtracted,
``reset="subtract"``. Its recurrent ``RLeaky`` appears as a two-node cycle (``lif <-> w_rec``), which imports
as :class:`~tidesim.nn.Recurrent`. The recurrent edge carries the previous step's spikes
(``x[t] + W s[t-1]``, as ``RLeaky``). The other way, snnTorch's ``import_from_nir`` reads our feed-forward
``LIF`` graphs exported with ``export_nir(net, shape, target="snntorch")`` (at ``dt=SNNTORCH_DT``) with the same
spikes for ``reset="zero"`` (it always resets to zero; the target refuses other resets and recurrent
layers); it rejects our ``IF`` nodes (it requires ``r == 1``) and does not step our recurrent subgraph as
``RLeaky`` (checked with snnTorch 1.0 and nirtorch 2.6).

Not expressible in NIR (export raises :class:`NIRConversionError` naming the layer): ``Neurons`` layers of
other models (AdEx, Izhikevich, HH, ...), plasticity, refractoriness, noise, and a ``Readout`` that is not the
last layer. Training-only settings (surrogate, ``learn_*``, ``detach_reset``) are not part of NIR: give
them again on import through ``lif_options``.
"""

from tidesim.nn.nir_common import SNNTORCH_DT, NIRConversionError, NIRSemanticsWarning, Scale
from tidesim.nn.nir_export import export_nir
from tidesim.nn.nir_import import import_nir

__all__ = ["export_nir", "import_nir", "Scale", "NIRConversionError", "NIRSemanticsWarning", "SNNTORCH_DT"]
