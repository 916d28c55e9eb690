"""The Flask front end: validates /extract requests, queues jobs, renders results."""
