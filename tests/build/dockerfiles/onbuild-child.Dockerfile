FROM onbuild-base
RUN cat /triggered /from-trigger.txt
