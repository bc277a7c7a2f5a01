"""Mail in, pure: what an incoming message is (an RSVP, a bounce, an answer), the human
answer in it, and the actions and nudges in a minutes file. Imports only domain."""
