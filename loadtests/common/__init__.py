"""What more than one of locust/, benchmark/ and reliability/ needs: statistics, ports, checkable texts."""
