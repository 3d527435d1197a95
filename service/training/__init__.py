"""Training and evaluation: tools beside the service that make and measure the shipped models.

The service never imports them."""
