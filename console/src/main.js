/* Last: every view has registered its frames and hooks; start where the tab left off. */

if (token) startConsole();
else showLogin('');
