"""AWS CDK constructs of Kizuna: embed ``Kizuna`` in your app, or deploy ``KizunaStack``."""

from kizuna_infra.kizuna import Kizuna
from kizuna_infra.stack import KizunaStack

__all__ = ["Kizuna", "KizunaStack"]
