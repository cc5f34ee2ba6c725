"""Code generation: a model's statements (Brian2's own, see ``brian2_code``; sympy for derivatives)
printed as torch functions (``torch_source``) and as C kernels for one population (``c_neuron``: forward
and adjoint) and for whole networks (``c_network``), the one loader that compiles and caches C
(``build``), and a model exported as a standalone Brian2 script (``brian2_script``)."""
