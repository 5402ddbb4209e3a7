"""intake: customer emails and web forms to tickets, acknowledgements and a case archive."""
