print("tflow")
