"""Quality of synthetic images: fundus feature space, FID/KID/PRDC, label fidelity, memorisation, screen."""
