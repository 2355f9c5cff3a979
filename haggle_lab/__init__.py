"""What composes services, outside the kernel: red team, chaos runs and test harnesses.

`haggle/` (the kernel) never imports a service; the code here may, because its job is to
drive several services at once. Only the CLI's composition root imports this package.
"""
