"""DataRobot DRUM drop-in for NVIDIA NIM LLMs: settings, engines, batch scoring and chat."""
