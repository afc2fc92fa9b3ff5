"""Training: data, objectives, resumable run state, and the denoiser and classifier trainers."""
