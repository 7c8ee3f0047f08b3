# Generated package marker; see tools/genproto.py.
