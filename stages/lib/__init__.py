"""The library the stages and tools share: params, paths and files, data, the model, its training,
its metrics and the figures. Nothing here imports a stage or a tool."""
