"""Networks, action distributions and policies that can sit in any seat."""
