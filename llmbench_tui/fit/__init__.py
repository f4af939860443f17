"""Will a model fit this machine, with how much context, and how fast could it decode?

``shape`` reads a model's architecture from any source, ``memory`` sizes its weights, KV cache and
compute buffers as llama.cpp allocates them, ``machine`` takes this machine's free RAM, GPU memory
and bandwidths, ``estimate`` puts them together, ``sources`` finds the shape of a model spec and
``check`` sets the prediction next to what a run measured. docs/fit.md explains the method.
Engine-side code: no Textual imports. Import the submodules themselves: this package's
``__init__`` stays empty so the engine can import ``fit.check`` without numpy until a run ends.
"""
