"""The templates the daemon ships (email/, pdf/, forms/, report/, survey/), installed as the
package `intake_templates` so that importlib.resources finds them in a wheel and in a checkout alike
(see intake/resources.py). Files in `[paths] templates` win over these."""
