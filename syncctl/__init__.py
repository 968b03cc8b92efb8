"""syncctl: declarative, Terraform-style sync of Microsoft Entra ID users and groups."""

__version__ = "0.1.0"

__all__ = ["__version__"]
