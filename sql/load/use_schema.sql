-- Run first in the load's session: unqualified references and load history resolve here.
USE SCHEMA {ns};
