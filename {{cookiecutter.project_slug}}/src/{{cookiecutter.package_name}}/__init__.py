"""The {{ cookiecutter.package_name }} web app, ready for AWS Lambda MicroVMs."""
