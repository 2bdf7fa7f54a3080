"""Running a model on a device: the torch and onnxruntime restorers behind one interface
(`base.TrackRestorer`), the choice between them (`backends.open_restorer`), the ONNX export and
its manifest. Imports `model` below it, never the engine or anything above; no torch until the
torch backend or the exporter is used.
"""
