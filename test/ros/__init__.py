"""The ros layer: nodes in-process with rclpy (a package, so that its conftest.py does not
replace the root test/conftest.py as the module ``conftest`` that other layers import from)."""
